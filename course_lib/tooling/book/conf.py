# Sphinx configuration of the course's website, copied into the staging folder by
# course_lib.tooling.book (which writes book.json beside it). Nothing here reaches the network.
import json
from pathlib import Path

_book = json.loads((Path(__file__).resolve().parent / "book.json").read_text())

project = _book["title"]
html_title = _book["title"]
author = "the course's authors"
extensions = ["myst_nb", "sphinx_design"]
exclude_patterns = ["_learner", "imgs", ".doctrees", "book.json", "**.ipynb_checkpoints"]

# The lessons were executed by `make course`: render their outputs, never run them again.
nb_execution_mode = "off"
nb_merge_streams = True
nb_ipywidgets_js = {}  # no widget manager script from a CDN
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
# A lesson that jumps from its title (H1) to an H3 still reads fine; Pygments' IPython lexer stops at
# a `!command \` line continuation (lesson 07's solution) and Sphinx shows that block in its relaxed
# mode, as readable. Every other warning fails the build.
suppress_warnings = ["myst.header", "misc.highlighting_failure"]

html_theme = "sphinx_book_theme"
html_static_path = ["_static"]
html_css_files = ["course.css"]
html_js_files = ["course.js"]
html_context = {"default_mode": "light"}  # the outputs' colours are made for a light page
html_use_index = False  # the lessons define no index entries
html_copy_source = False  # each page links to its notebook instead
html_show_sourcelink = False
html_theme_options = {
    "repository_url": _book["repository_url"],
    "use_repository_button": bool(_book["repository_url"]),
    "use_download_button": False,
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
    "navigation_with_keys": False,
    "navbar_persistent": [],  # one search field, in the sidebar (not a second one in a header bar)
}
