"""calinet's orchestrator: API objects, state store, IPAM, scheduler, controllers, kubelet/CNI,
the `Testbed` Python API and the `calinet` CLI."""


def __getattr__(name):
    # Lazy, so `import orchestrator.api` (pure, no root) does not pull in Mininet.
    if name == "Testbed":
        from orchestrator.testbed import Testbed
        return Testbed
    raise AttributeError(name)
