"""A plugin module that fails when imported (a user's predicate module with a bug at top level)."""

raise RuntimeError("this module is broken on purpose")
