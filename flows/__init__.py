"""Prefect flows over the core: ingest -> train -> register -> deploy.

Importing this package sets Prefect's environment for this installation (its
home under the mlops-lite home, analytics off, a start-up timeout long enough
for a first ephemeral start) unless the variables are already set.
"""

from mlops_lite.config import apply_prefect_environment, load_settings

apply_prefect_environment(load_settings())

from flows.closed_loop import monitor_flow, retrain_release_flow  # noqa: E402
from flows.context import bind, forget, platform_for, unbind  # noqa: E402
from flows.features import features_apply_flow, materialize_flow, train_features_flow  # noqa: E402
from flows.loop import deploy_flow, ingest_flow, register_flow, release_loop, train_flow  # noqa: E402

__all__ = ["bind", "deploy_flow", "features_apply_flow", "forget", "ingest_flow", "materialize_flow", "monitor_flow",
           "platform_for", "register_flow", "release_loop", "retrain_release_flow", "train_features_flow", "train_flow",
           "unbind"]
