/*
 * obs_assets.h - the observer's static files (the page, its script and its
 * style), compiled into the library from vm/observer/ by vm/obs_page.S.
 */
#ifndef KRX_OBS_ASSETS_H
#define KRX_OBS_ASSETS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct krx_obs_asset {
	const char *path;         /* as requested: "/", "/app.js" */
	const char *content_type; /* the Content-Type header's value */
	const unsigned char *data;
	size_t len;
} krx_obs_asset;

/* The asset served at path (len bytes, not NUL-terminated) into *out:
 * false if there is none. */
bool krx_obs_asset_find(const char *path, size_t len, krx_obs_asset *out);

#endif
