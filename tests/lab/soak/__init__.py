"""Tests of the soak's parts that need no lab (`casarray.lab.soak`)."""
