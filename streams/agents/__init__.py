"""Faust agents: stage A of the partitioned design (DESIGN.md section 2)."""
