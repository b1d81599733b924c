"""Tests of the ops surface: metrics, endpoints and the deploy files."""
