# Jupyter server configuration used by `quantstrip up` (JUPYTER_CONFIG_DIR points here).
# One server hosts JupyterLab (the IDE) and the Voila pages under reports/, bound to loopback
# with token authentication.
import os
import re

from quantstrip.dashboard import template_cache
from quantstrip.dashboard.launch_secret import read_secret

c = get_config()  # noqa: F821 - provided by Jupyter when it loads this file

c.ServerApp.ip = "127.0.0.1"
c.ServerApp.allow_remote_access = False
c.ServerApp.open_browser = False
c.ServerApp.port_retries = 0
c.ServerApp.root_dir = os.environ.get("QUANTSTRIP_WORKSPACE", os.getcwd())
c.ServerApp.default_url = "/voila/render/reports/home.ipynb"
c.ServerApp.jpserver_extensions = {"voila.server_extension": True, "jupyterlab": True}
# The token comes through a pipe `quantstrip up` hands over (never the environment, which every
# kernel would inherit, nor the command line, which `ps` shows to every local user).
token = read_secret()
if token:
    c.IdentityProvider.token = token
c.ServerApp.password_required = False
c.ServerApp.terminals_enabled = True

# Voila 0.5 bundles JupyterLab 4.2 front-end modules: lab extensions built for newer lab versions
# break its pages, so only what the pages need is loaded there.
c.VoilaConfiguration.extension_allowlist = [
    "@jupyter-widgets/jupyterlab-manager",
    "@voila-dashboards/widgets-manager8",
    "jupyterlab_pygments",
]
c.VoilaConfiguration.extension_denylist = ["jupysql-plugin", "@jupyter-lsp/jupyterlab-lsp"]
c.VoilaConfiguration.show_tracebacks = True
c.VoilaConfiguration.file_allowlist = [r".*\.(png|jpg|gif|svg|csv)"]

# Voila's pages would load MathJax from a CDN; "null" for both options tells Voila's front end
# not to load it at all (the pages typeset no LaTeX), so nothing leaves the machine.
c.ServerApp.tornado_settings = {"mathjax_url": "null", "mathjax_config": "null"}

# The "quantstrip" template (jupyter_config/data/voila/templates/) is Voila's lab template
# without its Font Awesome CDN links; `quantstrip up` puts jupyter_config/data on JUPYTER_PATH.
c.VoilaConfiguration.template = "quantstrip"

# A Voila page asks for its kernel's shutdown on unload with a beacon the server's XSRF check
# refuses; kernels whose page is gone are culled instead (idle and disconnected for 5 minutes).
c.MappingKernelManager.cull_idle_timeout = 300
c.MappingKernelManager.cull_interval = 60
c.MappingKernelManager.cull_connected = False

# Voila compiles its page templates for every page it renders: compiled once, kept in memory.
template_cache.install()

# Voila gives each page's kernel the request's URL: the kernel manager takes the token out first.
c.ServerApp.kernel_manager_class = "quantstrip.dashboard.kernels.TokenFreeKernelManager"

# The data directory (ledger, vault and its key, logs) is inside the served root by default:
# the contents manager and the /files handler refuse it (404) and the file browser hides it.
c.ServerApp.contents_manager_class = "quantstrip.dashboard.contents.PrivateContentsManager"

# JupyterLab reads settings overrides from here: they add a "Quantstrip" menu whose entries open
# every dashboard page (jupyter_config/lab/settings/overrides.json; a test keeps it in step with
# quantstrip.dashboard.PAGES).
c.LabApp.app_settings_dir = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "lab", "settings"
)

# What JupyterLab writes at runtime (the open tabs and layout, the user's own settings) belongs
# to the data directory, never to this checked-in configuration.
_home = os.environ.get("QUANTSTRIP_HOME") or os.path.join(c.ServerApp.root_dir, "var")
c.LabApp.workspaces_dir = os.path.join(_home, "lab", "workspaces")
c.LabApp.user_settings_dir = os.path.join(_home, "lab", "user-settings")
# Voila serves a few file types itself (/voila/files/): never from the data directory.
_relative_home = os.path.relpath(os.path.abspath(_home), os.path.abspath(c.ServerApp.root_dir))
if not _relative_home.startswith(".."):
    c.VoilaConfiguration.file_denylist = [r".*\.(ipynb|py)", re.escape(_relative_home) + r"(/.*)?"]
