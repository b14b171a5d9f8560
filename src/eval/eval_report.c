/* eval_report.c: the reports of trtconv eval (eval.h): a table, a JSON
 * document, an SVG chart.
 *
 * JSON (--output_json), one object:
 *   { "format": "trtconv-eval-1", "model_dir": str, "dataset": str,
 *     "checkpoints": [ { "checkpoint_dir": str, "predicted_tokens": int,
 *         "perplexity_source": num, "perplexity_converted": num,
 *         "perplexity_ratio": num, "nll_source": num, "nll_converted": num,
 *         "top1_agreement": num, "kl_mean": num,
 *         "linear_tokens": int,
 *         "layers": [ { "layer": int, "hidden_rel_error": num,
 *                       "local_rel_error": num, "flagged": bool,
 *                       "linear_rel_error": { "qkv": num, "dense": num,
 *                           "fc": num, "gate": num, "proj": num } }, ... ],
 *         "final_norm_rel_error": num, "flagged_layers": [int, ...] }, ... ] }
 * SVG (--plot): written directly (a fixed template of a few dozen
 * elements; no plotting library is worth a dependency for one line chart):
 * the relative error after each decoder layer, log scale, per checkpoint a
 * solid line (accumulated) and a dashed one (on the source's inputs) and a
 * legend entry, flagged layers circled; below it, when measured, the error
 * of each linear's output on the source's inputs, one small chart per
 * linear with the same colours. */
#define _POSIX_C_SOURCE 200809L
#include "trtconv/eval/eval.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "trtconv/core/fsutil.h"
#include "trtconv/core/log.h"

/* A report file, written whole (the reports are small). */
static tc_status write_file(const char *path, const char *data, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return tc_fail(TC_E_IO, "%s: cannot create: %s", path, strerror(errno));
    tc_status st = tc_pwrite_all(fd, path, data, n, 0);
    const tc_status sc = tc_close_file(&fd, path);
    return st != TC_OK ? st : sc;
}

void tc_eval_print(FILE *f, const tc_eval_result *r)
{
    fprintf(f, "trtconv eval: %s\n", r->label);
    fprintf(f, "  perplexity: source %.4f, converted %.4f, ratio %.4f (%lld predicted tokens)\n",
            r->ppl_source, r->ppl_converted, r->ppl_converted / r->ppl_source,
            (long long)r->predicted);
    fprintf(f, "  next token: top-1 agreement %.2f%%, KL(source || converted) %.3g nats/token\n",
            100.0 * r->top1, r->kl);
    fprintf(f, "  layer  hidden-state relative error: accumulated, on the source's input\n");
    for (int64_t i = 0; i < r->layers; i++)
        fprintf(f, "  %5lld  %.4e  %.4e%s\n", (long long)i, r->layer_error[i], r->local_error[i],
                r->flagged[i] ? "  <- flagged: far above the other layers" : "");
    fprintf(f, "  norm   %.4e  %.4e\n", r->layer_error[r->layers], r->local_error[r->layers]);
    if (r->linear_tokens > 0 && r->linear_error) {
        fprintf(f, "  layer  linear output relative error on the source's input (first %lld tokens "
                "of each batch)\n       ", (long long)r->linear_tokens);
        for (int k = 0; k < TC_EVAL_LINEARS; k++)
            fprintf(f, " %11s", tc_eval_linear_name(k));
        fprintf(f, "\n");
        for (int64_t i = 0; i < r->layers; i++) {
            fprintf(f, "  %5lld", (long long)i);
            for (int k = 0; k < TC_EVAL_LINEARS; k++) {
                const double v = r->linear_error[i * TC_EVAL_LINEARS + k];
                if (isnan(v))
                    fprintf(f, " %11s", "-");
                else
                    fprintf(f, " %11.4e", v);
            }
            fprintf(f, "\n");
        }
    }
    if (r->n_flagged)
        fprintf(f, "  %d layer(s) flagged: check their tensors (scales, smoothers)\n",
                r->n_flagged);
}

/* JSON numbers must be finite: Inf/NaN become null. */
static cJSON *num(double v)
{
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

tc_status tc_eval_write_json(const char *path, const char *model_dir, const char *dataset,
                             const tc_eval_result *r, size_t n)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *list = cJSON_CreateArray();
    if (!root || !list) {
        cJSON_Delete(root);
        cJSON_Delete(list);
        return tc_fail(TC_E_INTERNAL, "out of memory");
    }
    cJSON_AddStringToObject(root, "format", "trtconv-eval-1");
    cJSON_AddStringToObject(root, "model_dir", model_dir);
    cJSON_AddStringToObject(root, "dataset", dataset);
    cJSON_AddItemToObject(root, "checkpoints", list);
    for (size_t k = 0; k < n; k++) {
        const tc_eval_result *e = &r[k];
        cJSON *o = cJSON_CreateObject(), *layers = cJSON_CreateArray(),
              *flagged = cJSON_CreateArray();
        cJSON_AddItemToArray(list, o);
        cJSON_AddStringToObject(o, "checkpoint_dir", e->label);
        cJSON_AddNumberToObject(o, "predicted_tokens", (double)e->predicted);
        cJSON_AddNumberToObject(o, "linear_tokens", (double)e->linear_tokens);
        cJSON_AddItemToObject(o, "perplexity_source", num(e->ppl_source));
        cJSON_AddItemToObject(o, "perplexity_converted", num(e->ppl_converted));
        cJSON_AddItemToObject(o, "perplexity_ratio", num(e->ppl_converted / e->ppl_source));
        cJSON_AddItemToObject(o, "nll_source", num(e->nll_source));
        cJSON_AddItemToObject(o, "nll_converted", num(e->nll_converted));
        cJSON_AddItemToObject(o, "top1_agreement", num(e->top1));
        cJSON_AddItemToObject(o, "kl_mean", num(e->kl));
        for (int64_t i = 0; i < e->layers; i++) {
            cJSON *l = cJSON_CreateObject();
            cJSON_AddNumberToObject(l, "layer", (double)i);
            cJSON_AddItemToObject(l, "hidden_rel_error", num(e->layer_error[i]));
            cJSON_AddItemToObject(l, "local_rel_error", num(e->local_error[i]));
            cJSON_AddBoolToObject(l, "flagged", e->flagged[i]);
            if (e->linear_tokens > 0 && e->linear_error) {
                cJSON *lin = cJSON_CreateObject();
                for (int q = 0; q < TC_EVAL_LINEARS; q++)
                    cJSON_AddItemToObject(lin, tc_eval_linear_name(q),
                                          num(e->linear_error[i * TC_EVAL_LINEARS + q]));
                cJSON_AddItemToObject(l, "linear_rel_error", lin);
            }
            cJSON_AddItemToArray(layers, l);
            if (e->flagged[i])
                cJSON_AddItemToArray(flagged, cJSON_CreateNumber((double)i));
        }
        cJSON_AddItemToObject(o, "layers", layers);
        cJSON_AddItemToObject(o, "final_norm_rel_error", num(e->layer_error[e->layers]));
        cJSON_AddItemToObject(o, "flagged_layers", flagged);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    const tc_status st = write_file(path, text, strlen(text));
    free(text);
    return st;
}

/* ---- SVG ---- */

static const char *const colors[] = { "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                      "#8c564b" };

/* Append printf output to a growing buffer. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    for (int pass = 0; pass < 2 && !b->oom; pass++) {
        va_start(ap, fmt);
        const int need = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (need < 0) {
            b->oom = true;
            return;
        }
        if (b->p && b->n + (size_t)need < b->cap) {
            b->n += (size_t)need;
            return;
        }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap <= b->n + (size_t)need)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

/* XML text of s (checkpoint paths may hold & < >). */
static void put_text(sbuf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '&')
            put(b, "&amp;");
        else if (*s == '<')
            put(b, "&lt;");
        else if (*s == '>')
            put(b, "&gt;");
        else
            put(b, "%c", *s);
    }
}

/* The y of error e on the chart's log axis [10^d0, 10^d1]. */
static double y_of(double e, double d0, double d1, double y0, double ph)
{
    const double v = e > 0 && isfinite(e) ? log10(e) : d0;
    return y0 + ph - (fmin(fmax(v, d0), d1) - d0) / (d1 - d0) * ph;
}

/* The per-linear panels under the main chart: one per linear, layers on
 * x, a shared log axis, a line per checkpoint (unmeasured layers left out). */
static void linear_panels(sbuf *b, const tc_eval_result *r, size_t n, double x0, double top,
                          double pw)
{
    double lo = INFINITY, hi = -INFINITY;
    int64_t L = 1;
    for (size_t k = 0; k < n; k++) {
        if (r[k].linear_tokens <= 0 || !r[k].linear_error)
            continue;
        L = r[k].layers > L ? r[k].layers : L;
        for (int64_t i = 0; i < r[k].layers * TC_EVAL_LINEARS; i++) {
            const double e = r[k].linear_error[i];
            if (e > 0 && isfinite(e)) {
                lo = fmin(lo, e);
                hi = fmax(hi, e);
            }
        }
    }
    if (!isfinite(lo))
        lo = 1e-6, hi = 1e-5;
    const double d0 = floor(log10(lo)), d1 = fmax(ceil(log10(hi)), d0 + 1);
    const double gap = 10, w = (pw - gap * (TC_EVAL_LINEARS - 1)) / TC_EVAL_LINEARS, ph = 120;
    put(b, "<text x=\"%.0f\" y=\"%.0f\">relative error of each linear's output on the source's "
           "input (axis 1e%+.0f .. 1e%+.0f)</text>\n", x0, top - 8, d0, d1);
    for (int q = 0; q < TC_EVAL_LINEARS; q++) {
        const double px = x0 + (w + gap) * q, step = L > 1 ? w / (double)(L - 1) : 0.0;
        put(b, "<rect x=\"%.1f\" y=\"%.0f\" width=\"%.1f\" height=\"%.0f\" fill=\"none\" "
               "stroke=\"#444\"/><text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%s</text>\n",
            px, top, w, ph, px + w / 2, top + ph + 16, tc_eval_linear_name(q));
        for (size_t k = 0; k < n; k++) {
            if (r[k].linear_tokens <= 0 || !r[k].linear_error)
                continue;
            put(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"",
                colors[k % (sizeof colors / sizeof colors[0])]);
            for (int64_t i = 0; i < r[k].layers; i++) {
                const double e = r[k].linear_error[i * TC_EVAL_LINEARS + q];
                if (!isnan(e))
                    put(b, "%.1f,%.1f ", px + step * (double)i, y_of(e, d0, d1, top, ph));
            }
            put(b, "\"/>\n");
        }
    }
}

tc_status tc_eval_write_svg(const char *path, const tc_eval_result *r, size_t n)
{
    const double W = 720, x0 = 70, y0 = 30, pw = 600, ph = 320;
    bool linears = false;
    for (size_t k = 0; k < n; k++)
        linears = linears || (r[k].linear_tokens > 0 && r[k].linear_error);
    const double Hh = linears ? 620 : 420;
    int64_t L = 1;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t k = 0; k < n; k++) {
        L = r[k].layers > L ? r[k].layers : L;
        for (int64_t i = 0; i < 2 * r[k].layers; i++) {
            const double e = i < r[k].layers ? r[k].layer_error[i]
                                             : r[k].local_error[i - r[k].layers];
            if (e > 0 && isfinite(e)) {
                lo = fmin(lo, e);
                hi = fmax(hi, e);
            }
        }
    }
    if (!isfinite(lo)) /* every error zero: an unquantized checkpoint */
        lo = 1e-6, hi = 1e-5;
    const double d0 = floor(log10(lo)), d1 = fmax(ceil(log10(hi)), d0 + 1);
    sbuf b = { 0 };
    put(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
            "font-family=\"sans-serif\" font-size=\"12\">\n", W, Hh + 20.0 * (double)n);
    put(&b, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    put(&b, "<text x=\"%.0f\" y=\"18\">relative error of the hidden state after each decoder "
            "layer, converted vs source (solid: accumulated; dashed: on the source's "
            "input)</text>\n", x0);
    put(&b, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
            "stroke=\"#444\"/>\n", x0, y0, pw, ph);
    for (double d = d0; d <= d1; d += 1) {
        const double y = y0 + ph - (d - d0) / (d1 - d0) * ph;
        put(&b, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">1e%+.0f</text>\n",
            x0, y, x0 + pw, y, x0 - 6, y + 4, d);
    }
    const double step = L > 1 ? pw / (double)(L - 1) : 0.0;
    for (int64_t i = 0; i < L; i += (L > 16 ? L / 8 : 1))
        put(&b, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%lld</text>\n",
            x0 + step * (double)i, y0 + ph + 16, (long long)i);
    put(&b, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">layer</text>\n", x0 + pw / 2,
        y0 + ph + 32);
    if (linears)
        linear_panels(&b, r, n, x0, y0 + ph + 70, pw);
    for (size_t k = 0; k < n; k++) {
        const char *col = colors[k % (sizeof colors / sizeof colors[0])];
        for (int line = 0; line < 2; line++) {
            const double *err = line ? r[k].local_error : r[k].layer_error;
            put(&b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"",
                col, line ? " stroke-dasharray=\"5,4\"" : "");
            for (int64_t i = 0; i < r[k].layers; i++)
                put(&b, "%.1f,%.1f ", x0 + step * (double)i, y_of(err[i], d0, d1, y0, ph));
            put(&b, "\"/>\n");
        }
        for (int64_t i = 0; i < r[k].layers; i++)
            if (r[k].flagged[i])
                put(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"6\" fill=\"none\" stroke=\"%s\"/>\n",
                    x0 + step * (double)i, y_of(r[k].local_error[i], d0, d1, y0, ph), col);
        const double ly = Hh + 20.0 * (double)k;
        put(&b, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"%s\" "
                "stroke-width=\"2\"/><text x=\"%.0f\" y=\"%.0f\">",
            x0, ly - 4, x0 + 30, ly - 4, col, x0 + 38, ly);
        put_text(&b, r[k].label);
        put(&b, " (perplexity ratio %.4f)</text>\n", r[k].ppl_converted / r[k].ppl_source);
    }
    put(&b, "</svg>\n");
    if (b.oom) {
        free(b.p);
        return tc_fail(TC_E_INTERNAL, "out of memory writing %s", path);
    }
    const tc_status st = write_file(path, b.p, b.n);
    free(b.p);
    return st;
}
