/*
 * portcullis-yara: the kiosk's full YARA engine, libyara (Debian's libyara)
 * behind a small command-line helper the kiosk runs in a sandbox
 * (kiosk/engines/yara-full/full-engine.ts; docs/yara-engine.md).
 *
 *   portcullis-yara check FILE...
 *       Compiles each file on its own; one JSON line per file:
 *       {"path":..,"accepted":bool,"rules":N,"errors":[{"line":L,"message":..}],"warnings":[..]}
 *   portcullis-yara compile OUT NAMESPACE=FILE...
 *       Compiles every file into one rule set, each file in its own namespace,
 *       and saves it to OUT. Prints one JSON line per rule (the inventory:
 *       namespace, name, private, global, tags, meta) then {"done":..}; on any
 *       compile error prints the errors and exits 1, writing nothing.
 *   portcullis-yara serve RULES THREADS TIMEOUT_SECONDS
 *       Loads RULES and answers requests on standard input, one a line:
 *       "S <id> <path>" scans the file at <path>; "P <id> <path>" also counts
 *       every public rule the engine evaluated (the liveness proof). Answers are
 *       JSON lines carrying the id, in any order: {"id":..,"ok":true,"matches":[..]}
 *       or {"id":..,"ok":false,"error":"CODE"}.
 *
 * External variables public rule sets use (LOKI's and THOR's filename,
 * filepath, extension, filetype, owner) are defined as empty strings.
 *
 * Build: cc -O2 -o portcullis-yara portcullis-yara.c -lyara -lpthread (scripts/setup.sh).
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yara.h>

#define MAX_LINE 8192
#define MAX_OFFSETS 8   /* offsets reported per string; the count is always full */
#define MAX_STRINGS 16  /* strings reported per matching rule */
#define MAX_MATCHES 64  /* rules reported per file */
#define MAX_PROBLEMS 50 /* errors or warnings reported per file */

static const char* EXTERNALS[] = {"filename", "filepath", "extension", "filetype", "owner"};

/* ---- bounded JSON output into a growing buffer ---- */

typedef struct {
  char* data;
  size_t len, cap;
} Buf;

static void buf_put(Buf* b, const char* s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    while (b->len + n + 1 > cap) cap *= 2;
    char* grown = realloc(b->data, cap);
    if (grown == NULL) {
      fputs("{\"fatal\":\"out of memory\"}\n", stdout);
      exit(70);
    }
    b->data = grown;
    b->cap = cap;
  }
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
}

static void buf_str(Buf* b, const char* s) { buf_put(b, s, strlen(s)); }

static void buf_fmt(Buf* b, const char* fmt, long long v) {
  char tmp[64];
  int n = snprintf(tmp, sizeof tmp, fmt, v);
  buf_put(b, tmp, (size_t) n);
}

/* A JSON string: quotes, backslashes and every byte outside printable ASCII escaped (\u00XX: bytes as latin1). */
static void buf_json(Buf* b, const char* s, size_t max) {
  buf_put(b, "\"", 1);
  size_t n = 0;
  for (const unsigned char* p = (const unsigned char*) s; *p && n < max; p++, n++) {
    if (*p == '"' || *p == '\\') {
      char e[2] = {'\\', (char) *p};
      buf_put(b, e, 2);
    } else if (*p < 0x20 || *p > 0x7e) {
      char e[8];
      snprintf(e, sizeof e, "\\u%04x", *p);
      buf_put(b, e, 6);
    } else {
      buf_put(b, (const char*) p, 1);
    }
  }
  buf_put(b, "\"", 1);
}

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void emit(Buf* b) {
  buf_put(b, "\n", 1);
  pthread_mutex_lock(&out_lock);
  fwrite(b->data, 1, b->len, stdout);
  fflush(stdout);
  pthread_mutex_unlock(&out_lock);
  b->len = 0;
}

/* ---- compiling ---- */

typedef struct {
  Buf errors, warnings;
  int n_errors, n_warnings;
  const char* file;
} Problems;

static void on_compile_problem(int level, const char* file_name, int line, const YR_RULE* rule, const char* message, void* user) {
  (void) rule;
  Problems* p = user;
  Buf* b = level == YARA_ERROR_LEVEL_ERROR ? &p->errors : &p->warnings;
  int* n = level == YARA_ERROR_LEVEL_ERROR ? &p->n_errors : &p->n_warnings;
  if (*n >= MAX_PROBLEMS) {
    (*n)++;
    return;
  }
  if ((*n)++ > 0) buf_str(b, ",");
  buf_str(b, "{\"file\":");
  buf_json(b, file_name ? file_name : (p->file ? p->file : ""), 4096);
  buf_fmt(b, ",\"line\":%lld,\"message\":", line);
  buf_json(b, message ? message : "", 2048);
  buf_str(b, "}");
}

static int new_compiler(YR_COMPILER** compiler, Problems* problems) {
  if (yr_compiler_create(compiler) != ERROR_SUCCESS) return 0;
  yr_compiler_set_callback(*compiler, on_compile_problem, problems);
  for (size_t i = 0; i < sizeof EXTERNALS / sizeof *EXTERNALS; i++) {
    if (yr_compiler_define_string_variable(*compiler, EXTERNALS[i], "") != ERROR_SUCCESS) return 0;
  }
  return 1;
}

/* Adds one file; returns the number of errors (a file that cannot be opened is one). */
static int add_file(YR_COMPILER* compiler, Problems* problems, const char* path, const char* ns) {
  FILE* f = fopen(path, "r");
  problems->file = path;
  if (f == NULL) {
    on_compile_problem(YARA_ERROR_LEVEL_ERROR, path, 0, NULL, strerror(errno), problems);
    return 1;
  }
  int errors = yr_compiler_add_file(compiler, f, ns, path);
  fclose(f);
  return errors;
}

static int count_rules(YR_RULES* rules, int* public_rules) {
  int n = 0, pub = 0;
  YR_RULE* rule;
  yr_rules_foreach(rules, rule) {
    n++;
    if (!RULE_IS_PRIVATE(rule)) pub++;
  }
  if (public_rules) *public_rules = pub;
  return n;
}

static int cmd_check(int argc, char** argv) {
  Buf out = {0};
  for (int i = 0; i < argc; i++) {
    Problems problems = {0};
    YR_COMPILER* compiler = NULL;
    int rules = 0;
    if (!new_compiler(&compiler, &problems)) {
      fputs("{\"fatal\":\"cannot create a YARA compiler\"}\n", stdout);
      return 70;
    }
    int errors = add_file(compiler, &problems, argv[i], "default");
    if (errors == 0) {
      YR_RULES* compiled = NULL;
      if (yr_compiler_get_rules(compiler, &compiled) == ERROR_SUCCESS) {
        rules = count_rules(compiled, NULL);
        yr_rules_destroy(compiled);
      } else {
        on_compile_problem(YARA_ERROR_LEVEL_ERROR, argv[i], 0, NULL, "the compiled rules could not be built", &problems);
      }
    }
    yr_compiler_destroy(compiler);
    buf_str(&out, "{\"path\":");
    buf_json(&out, argv[i], 4096);
    buf_str(&out, problems.n_errors == 0 ? ",\"accepted\":true" : ",\"accepted\":false");
    buf_fmt(&out, ",\"rules\":%lld,\"errors\":[", rules);
    if (problems.errors.len) buf_str(&out, problems.errors.data);
    buf_fmt(&out, "],\"errorCount\":%lld,\"warnings\":[", problems.n_errors);
    if (problems.warnings.len) buf_str(&out, problems.warnings.data);
    buf_fmt(&out, "],\"warningCount\":%lld}", problems.n_warnings);
    emit(&out);
    free(problems.errors.data);
    free(problems.warnings.data);
  }
  return 0;
}

static void put_meta(Buf* b, const YR_RULE* rule) {
  const YR_META* meta;
  int first = 1;
  buf_str(b, "{");
  yr_rule_metas_foreach(rule, meta) {
    if (!first) buf_str(b, ",");
    first = 0;
    buf_json(b, meta->identifier, 256);
    buf_str(b, ":");
    if (meta->type == META_TYPE_STRING) buf_json(b, meta->string, 2048);
    else if (meta->type == META_TYPE_BOOLEAN) buf_str(b, meta->integer ? "true" : "false");
    else buf_fmt(b, "%lld", (long long) meta->integer);
  }
  buf_str(b, "}");
}

static int cmd_compile(int argc, char** argv) {
  if (argc < 2) return 64;
  Problems problems = {0};
  YR_COMPILER* compiler = NULL;
  if (!new_compiler(&compiler, &problems)) {
    fputs("{\"fatal\":\"cannot create a YARA compiler\"}\n", stdout);
    return 70;
  }
  int errors = 0;
  for (int i = 1; i < argc && errors == 0; i++) {
    char* eq = strchr(argv[i], '=');
    if (eq == NULL) return 64;
    *eq = '\0';
    errors += add_file(compiler, &problems, eq + 1, argv[i]);
  }
  Buf out = {0};
  if (errors != 0) {
    buf_str(&out, "{\"failed\":true,\"errors\":[");
    if (problems.errors.len) buf_str(&out, problems.errors.data);
    buf_str(&out, "]}");
    emit(&out);
    return 1;
  }
  YR_RULES* rules = NULL;
  if (yr_compiler_get_rules(compiler, &rules) != ERROR_SUCCESS || yr_rules_save(rules, argv[0]) != ERROR_SUCCESS) {
    fputs("{\"failed\":true,\"errors\":[{\"file\":\"\",\"line\":0,\"message\":\"the compiled rules could not be built or saved\"}]}\n", stdout);
    return 1;
  }
  YR_RULE* rule;
  yr_rules_foreach(rules, rule) {
    buf_str(&out, "{\"ns\":");
    buf_json(&out, rule->ns->name, 4096);
    buf_str(&out, ",\"rule\":");
    buf_json(&out, rule->identifier, 256);
    buf_str(&out, RULE_IS_PRIVATE(rule) ? ",\"private\":true" : ",\"private\":false");
    buf_str(&out, RULE_IS_GLOBAL(rule) ? ",\"global\":true" : ",\"global\":false");
    buf_str(&out, ",\"tags\":[");
    const char* tag;
    int first = 1;
    yr_rule_tags_foreach(rule, tag) {
      if (!first) buf_str(&out, ",");
      first = 0;
      buf_json(&out, tag, 256);
    }
    buf_str(&out, "],\"meta\":");
    put_meta(&out, rule);
    buf_str(&out, "}");
    emit(&out);
  }
  int pub = 0;
  int n = count_rules(rules, &pub);
  buf_fmt(&out, "{\"done\":true,\"rules\":%lld", n);
  buf_fmt(&out, ",\"public\":%lld,\"warnings\":[", pub);
  if (problems.warnings.len) buf_str(&out, problems.warnings.data);
  buf_fmt(&out, "],\"warningCount\":%lld}", problems.n_warnings);
  emit(&out);
  yr_rules_destroy(rules);
  yr_compiler_destroy(compiler);
  return 0;
}

/* ---- serving scans ---- */

typedef struct Job {
  struct Job* next;
  char kind;
  char id[32];
  char path[4096];
} Job;

static YR_RULES* served_rules;
static int scan_timeout;
static Job *queue_head, *queue_tail;
static int input_done;
static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queue_ready = PTHREAD_COND_INITIALIZER;

typedef struct {
  Buf matches;
  int n_matches;
  int evaluated;
  int too_many;
} ScanState;

static int on_scan(YR_SCAN_CONTEXT* context, int message, void* data, void* user) {
  ScanState* s = user;
  if (message == CALLBACK_MSG_RULE_NOT_MATCHING) {
    s->evaluated++;
    return CALLBACK_CONTINUE;
  }
  if (message == CALLBACK_MSG_TOO_MANY_MATCHES) {
    s->too_many = 1; /* a string stopped counting: the scan is not complete */
    return CALLBACK_CONTINUE;
  }
  if (message != CALLBACK_MSG_RULE_MATCHING) return CALLBACK_CONTINUE;
  s->evaluated++;
  if (s->n_matches >= MAX_MATCHES) {
    s->n_matches++;
    return CALLBACK_CONTINUE;
  }
  const YR_RULE* rule = data;
  Buf* b = &s->matches;
  if (s->n_matches++ > 0) buf_str(b, ",");
  buf_str(b, "{\"ns\":");
  buf_json(b, rule->ns->name, 4096);
  buf_str(b, ",\"rule\":");
  buf_json(b, rule->identifier, 256);
  buf_str(b, ",\"strings\":[");
  const YR_STRING* string;
  int reported = 0;
  yr_rule_strings_foreach(rule, string) {
    if (STRING_IS_PRIVATE(string)) continue;
    int count = 0;
    const YR_MATCH* match;
    yr_string_matches_foreach(context, string, match) { count++; }
    if (count == 0 || reported >= MAX_STRINGS) continue;
    if (reported++ > 0) buf_str(b, ",");
    buf_str(b, "{\"id\":");
    buf_json(b, string->identifier, 256);
    buf_fmt(b, ",\"count\":%lld,\"offsets\":[", count);
    int k = 0;
    yr_string_matches_foreach(context, string, match) {
      if (k >= MAX_OFFSETS) break;
      if (k++ > 0) buf_str(b, ",");
      buf_fmt(b, "%lld", (long long) (match->base + match->offset));
    }
    buf_str(b, "]}");
  }
  buf_str(b, "]}");
  return CALLBACK_CONTINUE;
}

static const char* scan_error_code(int rc) {
  switch (rc) {
    case ERROR_SCAN_TIMEOUT: return "YARA_SCAN_TIMEOUT";
    case ERROR_TOO_MANY_MATCHES: return "YARA_TOO_MANY_MATCHES";
    case ERROR_INSUFFICIENT_MEMORY: return "YARA_OUT_OF_MEMORY";
    case ERROR_COULD_NOT_OPEN_FILE:
    case ERROR_COULD_NOT_MAP_FILE: return "YARA_CANNOT_READ";
    default: return "YARA_SCAN_FAILED";
  }
}

static void* worker(void* arg) {
  (void) arg;
  YR_SCANNER* scanner = NULL;
  Buf out = {0};
  ScanState state = {0};
  if (yr_scanner_create(served_rules, &scanner) != ERROR_SUCCESS) {
    fputs("{\"fatal\":\"cannot create a YARA scanner\"}\n", stdout);
    exit(70);
  }
  yr_scanner_set_callback(scanner, on_scan, &state);
  yr_scanner_set_timeout(scanner, scan_timeout);
  for (;;) {
    pthread_mutex_lock(&queue_lock);
    while (queue_head == NULL && !input_done) pthread_cond_wait(&queue_ready, &queue_lock);
    Job* job = queue_head;
    if (job != NULL) {
      queue_head = job->next;
      if (queue_head == NULL) queue_tail = NULL;
    }
    pthread_mutex_unlock(&queue_lock);
    if (job == NULL) break;
    state.matches.len = 0;
    state.n_matches = 0;
    state.evaluated = 0;
    state.too_many = 0;
    yr_scanner_set_flags(scanner, job->kind == 'P' ? SCAN_FLAGS_REPORT_RULES_MATCHING | SCAN_FLAGS_REPORT_RULES_NOT_MATCHING : SCAN_FLAGS_REPORT_RULES_MATCHING);
    int rc = yr_scanner_scan_file(scanner, job->path);
    buf_str(&out, "{\"id\":");
    buf_json(&out, job->id, 32);
    if (rc == ERROR_SUCCESS && state.too_many) rc = ERROR_TOO_MANY_MATCHES;
    if (rc != ERROR_SUCCESS) {
      buf_str(&out, ",\"ok\":false,\"error\":");
      buf_json(&out, scan_error_code(rc), 64);
      buf_fmt(&out, ",\"libyara\":%lld}", rc);
    } else {
      buf_str(&out, ",\"ok\":true,\"matches\":[");
      if (state.matches.len) buf_str(&out, state.matches.data);
      buf_fmt(&out, "],\"matchCount\":%lld", state.n_matches);
      if (job->kind == 'P') buf_fmt(&out, ",\"evaluated\":%lld", state.evaluated);
      buf_str(&out, "}");
    }
    emit(&out);
    free(job);
  }
  yr_scanner_destroy(scanner);
  return NULL;
}

static int cmd_serve(int argc, char** argv) {
  if (argc != 3) return 64;
  int threads = atoi(argv[1]);
  scan_timeout = atoi(argv[2]);
  if (threads < 1 || threads > 64 || scan_timeout < 1) return 64;
  int rc = yr_rules_load(argv[0], &served_rules);
  if (rc != ERROR_SUCCESS) {
    printf("{\"fatal\":\"cannot load the compiled rules\",\"libyara\":%d}\n", rc);
    return 1;
  }
  for (size_t i = 0; i < sizeof EXTERNALS / sizeof *EXTERNALS; i++) yr_rules_define_string_variable(served_rules, EXTERNALS[i], "");
  int pub = 0;
  int n = count_rules(served_rules, &pub);
  printf("{\"ready\":true,\"rules\":%d,\"public\":%d,\"libyara\":\"%s\"}\n", n, pub, YR_VERSION);
  fflush(stdout);
  pthread_t* pool = calloc((size_t) threads, sizeof *pool);
  for (int i = 0; i < threads; i++) pthread_create(&pool[i], NULL, worker, NULL);
  char line[MAX_LINE];
  while (fgets(line, sizeof line, stdin) != NULL) {
    size_t len = strlen(line);
    if (len == 0 || line[len - 1] != '\n') break; /* a line too long: the kiosk never sends one */
    line[len - 1] = '\0';
    char* id = strchr(line, ' ');
    char* path = id ? strchr(id + 1, ' ') : NULL;
    if ((line[0] != 'S' && line[0] != 'P') || id != line + 1 || path == NULL || path - id - 1 >= 32) break;
    Job* job = calloc(1, sizeof *job);
    job->kind = line[0];
    memcpy(job->id, id + 1, (size_t) (path - id - 1));
    snprintf(job->path, sizeof job->path, "%s", path + 1);
    pthread_mutex_lock(&queue_lock);
    if (queue_tail) queue_tail->next = job;
    else queue_head = job;
    queue_tail = job;
    pthread_cond_signal(&queue_ready);
    pthread_mutex_unlock(&queue_lock);
  }
  pthread_mutex_lock(&queue_lock);
  input_done = 1;
  pthread_cond_broadcast(&queue_ready);
  pthread_mutex_unlock(&queue_lock);
  for (int i = 0; i < threads; i++) pthread_join(pool[i], NULL);
  yr_rules_destroy(served_rules);
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fputs("usage: portcullis-yara check FILE... | compile OUT NS=FILE... | serve RULES THREADS TIMEOUT_SECONDS\n", stderr);
    return 64;
  }
  if (yr_initialize() != ERROR_SUCCESS) {
    fputs("{\"fatal\":\"libyara did not initialise\"}\n", stdout);
    return 70;
  }
  int rc = 64;
  if (strcmp(argv[1], "check") == 0) rc = cmd_check(argc - 2, argv + 2);
  else if (strcmp(argv[1], "compile") == 0) rc = cmd_compile(argc - 2, argv + 2);
  else if (strcmp(argv[1], "serve") == 0) rc = cmd_serve(argc - 2, argv + 2);
  else fputs("usage: portcullis-yara check FILE... | compile OUT NS=FILE... | serve RULES THREADS TIMEOUT_SECONDS\n", stderr);
  yr_finalize();
  return rc;
}
