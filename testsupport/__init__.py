"""Pytest plugins shared by every test tree: real servers started by the test session."""
