"""pollama.sched."""
