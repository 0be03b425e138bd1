// Search results show a summary of each page by fetching the page; a browser refuses such a
// fetch from a file:// page, so opened from disk the results list titles only (no console error).
// (DOCUMENTATION_OPTIONS is a top-level const of Sphinx's documentation_options.js, not on window.)
if (window.location.protocol === "file:" && typeof DOCUMENTATION_OPTIONS !== "undefined") {
  DOCUMENTATION_OPTIONS.SHOW_SEARCH_SUMMARY = false;
}
