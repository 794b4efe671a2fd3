"""Cloud policy: which cloud a spec names, when a chat escalates, what it costs. Pure decisions only."""
