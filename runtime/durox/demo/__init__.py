"""A runnable demonstration of versioned upgrades at `continue_as_new` (`python -m durox.demo`)."""
