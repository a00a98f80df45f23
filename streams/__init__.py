"""Stream processing adapters around the pure rules: Kafka topics, Faust agents, sinks."""
