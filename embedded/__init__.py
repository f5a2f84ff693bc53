"""Start the bundled Kafka-compatible broker (tansu) and Redis as child processes."""
