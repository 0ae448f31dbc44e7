"""Self-supervised two-view methods: SimCLR, BYOL, DirectPred, SimSiam."""
