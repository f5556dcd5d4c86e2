"""Search planners on the env's own model: shooting, CEM and beam (`search`), Gumbel MuZero
through mctx (`gumbel`), the POMDP belief and oracle planners (`belief`, `pomcp`), and what they
share (`planning`: the model, the planner protocol and the episode runner)."""
