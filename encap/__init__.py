"""Encapsulation (VXLAN) as Felix programs it: a pure plan per node and its applier."""
