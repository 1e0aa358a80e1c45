"""The durox Kubernetes operator: OrchestrationRegistry in, worker ConfigMap and Deployment out.

Layers, outermost first: `cli` (process entry) → `handlers` (kopf events) → `reconciler` (the
one place that sequences API calls) → `kube` (the API door) and `planner` (pure decisions) →
`model` (names and vocabulary). The operator imports the runtime's worker configuration model;
the runtime never imports the operator.
"""

__all__: list[str] = []
