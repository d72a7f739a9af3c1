"""The web UI's promise to stay offline, kept before gradio is first imported.

``qa.ui``'s package import runs this module, so every UI module has it in force: gradio's analytics
and version check and the hub's network calls are off, and loopback is never sent to a proxy.
"""

import os

OFFLINE_VARIABLES = {  # set unconditionally: a user's environment must not turn these back on
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}
os.environ.update(OFFLINE_VARIABLES)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch or llama.cpp load OpenMP
for _var in ("no_proxy", "NO_PROXY"):
    _hosts = [h for h in os.environ.get(_var, "").split(",") if h]
    os.environ[_var] = ",".join(dict.fromkeys([*_hosts, "127.0.0.1", "localhost"]))
