"""Hard revealing-POMDP families with exact tools: one module per family, shared pieces beside."""
