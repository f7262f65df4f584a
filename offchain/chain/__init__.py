"""The chain layer: contract clients, deployment, the network a command talks to, the event store."""
