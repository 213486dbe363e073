"""Tests of the hosts lab: its plan (pure) and its network (real namespaces, as root)."""
