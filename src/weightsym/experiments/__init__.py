"""Experiments of the paper: config -> run -> results folder."""
