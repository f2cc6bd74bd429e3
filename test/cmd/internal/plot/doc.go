// Package plot draws the benchmark's charts as standalone SVG documents,
// written by hand: no dependency, no fonts to embed, text a browser or an
// image viewer renders with its default sans-serif font.
//
// A StripChart shows distributions side by side: one row per group (a
// failover phase), one band per series (a set-up), every sample a dot, the
// median a bar and the nearest-rank p90 the end of a box, on a linear or a
// logarithmic axis. It does no I/O: SVG returns the document.
package plot
