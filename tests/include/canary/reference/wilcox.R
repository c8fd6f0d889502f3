# Reference values for tests/include/canary/test_judge_reference.py, computed by R (not by modelgate).
# Run: Rscript tests/include/canary/reference/wilcox.R   (Debian: apt-get install -y r-base-core)
# tol.root = 1e-12 lets uniroot resolve the step function's root, so the normal-approximation bounds
# are R's own pairwise-difference jump points to ~1e-12 instead of the default 1e-4.
samples <- list(
  # R's own ?wilcox.test example (Hollander & Wolfe 1973, p. 69): exact, no ties
  depression = list(x = c(0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46),
                    y = c(1.15, 0.88, 0.90, 0.74, 1.21)),
  # integer scores with ties: normal approximation with tie and continuity correction
  ties = list(x = c(3, 4, 4, 5, 6, 6, 6, 7, 8, 9), y = c(1, 2, 2, 3, 4, 4, 5, 5, 6, 7, 7, 8)),
  # 60 vs 80 distinct values: normal approximation (n >= 50)
  large = list(x = ((1:60) * 37) %% 101 / 7, y = ((1:80) * 53) %% 103 / 7 + 0.3)
)
for (name in names(samples)) {
  s <- samples[[name]]
  for (alt in c("two.sided", "greater", "less")) {
    for (lvl in c(0.95, 0.9)) {
      r <- suppressWarnings(wilcox.test(s$x, s$y, alternative = alt, conf.int = TRUE,
                                        conf.level = lvl, tol.root = 1e-12))
      cat(sprintf("%s %s %.2f W=%.17g p=%.17g lo=%.17g hi=%.17g est=%.17g hl=%.17g\n", name, alt, lvl,
                  r$statistic, r$p.value, r$conf.int[1], r$conf.int[2], r$estimate,
                  median(outer(s$x, s$y, "-"))))
    }
  }
}
# rates: one-sided Fisher exact test (canary errors x1/n1 greater than baseline x2/n2)
for (cnt in list(c(5, 50, 0, 50), c(3, 200, 1, 200), c(12, 300, 4, 300), c(64, 210, 17, 210))) {
  m <- matrix(c(cnt[1], cnt[2] - cnt[1], cnt[3], cnt[4] - cnt[3]), 2)
  cat(sprintf("fisher %d/%d vs %d/%d greater p=%.17g two.sided p=%.17g\n", cnt[1], cnt[2], cnt[3], cnt[4],
              fisher.test(m, alternative = "greater")$p.value, fisher.test(m)$p.value))
}
