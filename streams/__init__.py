"""The Faust application: topics, agents, tables and web views. The only code that knows Kafka."""
