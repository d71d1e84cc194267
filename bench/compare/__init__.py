"""The comparison job on DFIP, Kafka Streams, Faust and Quix Streams (see README.md)."""
