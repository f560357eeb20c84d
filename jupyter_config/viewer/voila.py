# Voila configuration of the viewer server (`quantstrip up` starts it with
# JUPYTER_CONFIG_DIR pointing here): a standalone Voila over reports/viewer/ only, for people the
# operator shares reports with. No JupyterLab, no terminals, no /files, no contents API, no
# kernels on demand: Voila starts a kernel per page it renders and relays widget messages only
# (its allowed_message_types: comm_*, kernel_info_request, shutdown_request), never code.
import secrets

from quantstrip.dashboard import template_cache

c = get_config()  # noqa: F821 - provided by Jupyter when it loads this file

c.Voila.ip = "127.0.0.1"
c.Voila.open_browser = False
# Every request is checked against the vault's active viewers (quantstrip.dashboard.viewers);
# the token below only switches authentication on and is never handed to anyone.
c.Voila.identity_provider_class = "quantstrip.dashboard.viewer_auth.ViewerIdentityProvider"
c.Voila.token = secrets.token_urlsafe(32)
c.Voila.tornado_settings = {"mathjax_url": "null", "mathjax_config": "null"}

c.VoilaConfiguration.template = "quantstrip"
c.VoilaConfiguration.extension_allowlist = [
    "@jupyter-widgets/jupyterlab-manager",
    "@voila-dashboards/widgets-manager8",
    "jupyterlab_pygments",
]
c.VoilaConfiguration.extension_denylist = ["jupysql-plugin", "@jupyter-lsp/jupyterlab-lsp"]
c.VoilaConfiguration.show_tracebacks = False
c.VoilaConfiguration.file_allowlist = []  # the pages draw everything themselves
template_cache.install()  # page templates compiled once, not for every page (template_cache.py)
c.VoilaConfiguration.multi_kernel_manager_class = (
    "quantstrip.dashboard.kernels.TokenFreeKernelManager"
)

# A page asks for its kernel's shutdown on unload with a beacon the XSRF check refuses (as on
# the operator's server): kernels whose page is gone are culled instead (idle and disconnected
# for 5 minutes), so a viewer's visits do not pile up kernels.
c.MappingKernelManager.cull_idle_timeout = 300
c.MappingKernelManager.cull_interval = 60
c.MappingKernelManager.cull_connected = False
