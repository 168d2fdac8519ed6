"""Gather run directories into paper-style tables and plots."""
