"""Hard revealing-POMDP families with exact tools (DESIGN §3.3)."""
