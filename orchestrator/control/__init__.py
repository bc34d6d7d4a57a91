"""The control plane: the state store and its client, the scheduler and what it reads,
Service address allocation, the Node objects of a topology. (Controllers: orchestrator.controllers.)"""
