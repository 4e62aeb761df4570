// Scratch scorer: one descent of the context trie (nearest token first), then walk back up to the deepest
// level whose entry list holds the target, multiplying the back-off weights gamma(h) of the levels passed.
// Levels are CSR arrays exported by stats.py (children sorted by label, entries sorted by target id).
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <math.h>
#include <time.h>
#define PAD 50257
typedef struct { int64_t n, ne; int32_t *lab, *ch, *es, *ew; float *ep, *g; } Level;
static void *rd(const char *dir, int k, const char *nm, size_t *bytes) {
  char p[512]; if (k >= 0) snprintf(p, sizeof p, "%s/L%d_%s", dir, k, nm); else snprintf(p, sizeof p, "%s/%s", dir, nm);
  FILE *f = fopen(p, "rb"); if (!f) { perror(p); exit(1); }
  fseek(f, 0, SEEK_END); long sz = ftell(f); fseek(f, 0, SEEK_SET);
  void *b = malloc(sz); if (fread(b, 1, sz, f) != (size_t)sz) exit(2); fclose(f); if (bytes) *bytes = sz; return b;
}
static inline int64_t bsearch32(const int32_t *a, int64_t lo, int64_t hi, int32_t x) {
  while (lo < hi) { int64_t mid = (lo + hi) >> 1; if (a[mid] < x) lo = mid + 1; else hi = mid; }
  return lo;
}
int main(int argc, char **argv) {
  const char *dir = argv[1]; int W = atoi(argv[2]); int reps = argc > 3 ? atoi(argv[3]) : 20;
  Level L[65];
  for (int k = 0; k <= W; k++) {
    int64_t *n = rd(dir, k, "n", 0); L[k].n = n[0]; L[k].ne = n[1];
    L[k].lab = rd(dir, k, "lab", 0); L[k].ch = rd(dir, k, "ch", 0); L[k].es = rd(dir, k, "es", 0);
    L[k].ew = rd(dir, k, "ew", 0); L[k].ep = rd(dir, k, "ep", 0); L[k].g = rd(dir, k, "g", 0);
  }
  float *base = rd(dir, -1, "base", 0); size_t tb, lb; int32_t *te = rd(dir, -1, "test", &tb);
  int32_t *tl = rd(dir, -1, "testlen", &lb); uint8_t *seen = rd(dir, -1, "seen", 0);
  int64_t nt = tb / 4, nb = lb / 4;
  int32_t *child1 = malloc(sizeof(int32_t) * (PAD + 1)); for (int x = 0; x <= PAD; x++) child1[x] = -1;
  for (int64_t a = 0; a < L[1].n; a++) child1[L[1].lab[a]] = (int32_t)a;
  float *p0 = malloc(sizeof(float) * PAD); for (int x = 0; x < PAD; x++) p0[x] = -1;
  for (int64_t a = 0; a < L[0].ne; a++) p0[L[0].ew[a]] = L[0].ep[a];
  double sumlog = 0; int64_t nseen = 0; int64_t path[65];
  struct timespec t0, t1; clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int r = 0; r < reps; r++) {
    sumlog = 0; nseen = 0; int64_t i = 0;
    for (int64_t b = 0; b < nb; b++) {
      for (int64_t j = 0; j < tl[b]; j++, i++) {
        int32_t w = te[i]; int64_t node = 0; int m = 0; path[0] = 0;
        for (int k = 1; k <= W; k++) {                      // descend: token at distance k (pad at block start)
          if (k > j + 1) break;
          int32_t x = (k <= j) ? te[i - k] : PAD;
          if (k == 1) { int32_t c = child1[x]; if (c < 0) break; node = c; path[1] = c; m = 1; continue; }
          const Level *up = &L[k - 1];
          int64_t lo = up->ch[node], hi = up->ch[node + 1];
          if (lo == hi) break;
          int64_t at = bsearch32(L[k].lab, lo, hi, x);
          if (at == hi || L[k].lab[at] != x) break;
          node = at; path[k] = node; m = k;
        }
        double bo = 1.0, p = -1;
        for (int k = m; k >= 1; k--) {                       // walk up to the first level that saw w
          const Level *lv = &L[k]; int64_t nd = path[k];
          int64_t lo = lv->es[nd], hi = lv->es[nd + 1];
          int64_t at = bsearch32(lv->ew, lo, hi, w);
          if (at < hi && lv->ew[at] == w) { p = bo * lv->ep[at]; break; }
          bo *= lv->g[nd];
        }
        if (p < 0) { if (p0[w] >= 0) p = bo * p0[w]; else p = bo * L[0].g[0] * base[w]; }
        if (seen[i]) { sumlog += log(p); nseen++; }
      }
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double s = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
  printf("W=%d ppl_seen %.2f over %ld seen tokens; %.0f tokens/s single thread (%d passes of %ld tokens, %.3f s)\n",
         W, exp(-sumlog / nseen), (long)nseen, reps * (double)nt / s, reps, (long)nt, s);
  return 0;
}
