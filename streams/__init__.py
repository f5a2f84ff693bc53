"""The Faust application: topics, agents, the table, the consumer adapter and web views."""
