"""The embedded singing-voice-conversion demo: its modules, its chain and the stages that run the chain."""
