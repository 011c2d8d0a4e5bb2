/*
 * hist.c - the log-linear latency histogram (see hist.h for the layout and
 * its error bound).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hist.h"

hist *hist_new(void)
{
	return calloc(1, sizeof(hist));
}

void hist_free(hist *h)
{
	free(h);
}

void hist_reset(hist *h)
{
	memset(h, 0, sizeof *h);
}

/* The smallest value in bucket i, and how many values the bucket holds. */
static uint64_t bucket_lo(unsigned i, uint64_t *width)
{
	if (i < 2 * HIST_SUB) {
		*width = 1;
		return i;
	}
	unsigned shift = i / HIST_SUB - 1;
	*width = (uint64_t)1 << shift;
	return (uint64_t)(i - shift * HIST_SUB) << shift;
}

/* What a bucket reports for its values: its midpoint, within [min, max]. */
static uint64_t bucket_value(const hist *h, unsigned i)
{
	uint64_t width, lo = bucket_lo(i, &width);
	uint64_t v = lo + (width - 1) / 2;
	return v < h->min ? h->min : v > h->max ? h->max : v;
}

uint64_t hist_percentile(const hist *h, double p)
{
	if (h->count == 0)
		return 0;
	if (p <= 0)
		return h->min;
	if (p >= 100)
		return h->max;
	uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->count);
	if (rank < 1)
		rank = 1;
	if (rank > h->count)
		rank = h->count;
	uint64_t seen = 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank)
			return bucket_value(h, i);
	}
	return h->max; /* not reached: the buckets add up to count */
}

double hist_mean(const hist *h)
{
	return h->count ? (double)h->sum / (double)h->count : 0.0;
}

uint64_t hist_count(const hist *h)
{
	return h->count;
}

void hist_merge(hist *dst, const hist *src)
{
	if (src->count == 0)
		return;
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		dst->b[i] += src->b[i];
	if (dst->count == 0 || src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
	dst->count += src->count;
	dst->sum += src->sum;
}

int hist_write_cdf(const hist *h, const char *path, const char *what)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	fprintf(f, "# %s: %llu samples; value (ns), fraction at or below it\n", what,
		(unsigned long long)h->count);
	uint64_t seen = 0;
	for (unsigned i = 0; i < HIST_BUCKETS && seen < h->count; i++) {
		if (!h->b[i])
			continue;
		seen += h->b[i];
		fprintf(f, "%llu %.6f\n", (unsigned long long)bucket_value(h, i),
			(double)seen / (double)h->count);
	}
	return fclose(f) == 0 ? 0 : -1;
}
