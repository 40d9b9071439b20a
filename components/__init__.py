"""The pipeline stages: one folder per stage (pure logic, CLI, KFP component)."""
