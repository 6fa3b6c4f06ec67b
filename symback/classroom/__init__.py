"""Exercises for a class and grading the submissions."""
