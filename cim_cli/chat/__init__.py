"""`cim chat`: the prompt-toolkit client (screen, commands, emoji, profile)."""
