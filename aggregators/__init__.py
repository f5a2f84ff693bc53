"""Pure aggregation logic: event-time buckets, trailing windows, sketches, money.

Nothing here knows Kafka, Redis or asyncio, so all of it is tested fast and exhaustively.
"""
