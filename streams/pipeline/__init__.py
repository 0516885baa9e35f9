"""The streaming pipeline: Kafka topics in, the engine, Kafka topics out."""
