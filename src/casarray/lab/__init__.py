"""The lab: a whole organization on one machine (DESIGN.md, "The lab")."""
