"""Off-chain side of MedShare: encryption, IPFS storage, chain client, CLI."""
