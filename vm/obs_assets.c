/*
 * obs_assets.c - the observer's static files by path (see obs_assets.h).
 */
#include "obs_assets.h"

#include <string.h>

extern const unsigned char krx_obs_index_html[], krx_obs_index_html_end[];
extern const unsigned char krx_obs_app_js[], krx_obs_app_js_end[];
extern const unsigned char krx_obs_app_css[], krx_obs_app_css_end[];

static const struct {
	const char *path, *type;
	const unsigned char *start, *end;
} assets[] = {
	{ "/", "text/html; charset=utf-8", krx_obs_index_html, krx_obs_index_html_end },
	{ "/index.html", "text/html; charset=utf-8", krx_obs_index_html, krx_obs_index_html_end },
	{ "/app.js", "text/javascript; charset=utf-8", krx_obs_app_js, krx_obs_app_js_end },
	{ "/app.css", "text/css; charset=utf-8", krx_obs_app_css, krx_obs_app_css_end },
};

bool krx_obs_asset_find(const char *path, size_t len, krx_obs_asset *out)
{
	for (size_t i = 0; i < sizeof assets / sizeof assets[0]; i++) {
		if (strlen(assets[i].path) != len || memcmp(assets[i].path, path, len) != 0)
			continue;
		*out = (krx_obs_asset){ assets[i].path, assets[i].type, assets[i].start,
			                (size_t)(assets[i].end - assets[i].start) };
		return true;
	}
	return false;
}
