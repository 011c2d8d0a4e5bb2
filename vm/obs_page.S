/*
 * obs_page.S - the observer's page, built into the library as it is in
 * vm/observer/ (no network, no files at run time): each asset's bytes
 * between two symbols, which vm/obs_assets.c lists by path.
 */
#define ASSET(sym, file)              \
	.globl sym, sym##_end;        \
	.balign 16;                   \
sym:	.incbin file;                 \
sym##_end:

	.section .rodata
ASSET(krx_obs_index_html, "vm/observer/index.html")
ASSET(krx_obs_app_js, "vm/observer/app.js")
ASSET(krx_obs_app_css, "vm/observer/app.css")

	.section .note.GNU-stack, "", %progbits
