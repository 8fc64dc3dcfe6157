# Calibration fixture (issue 9 item 3): R survey's calibrate() (linear GREG) of the evalkit-drawn
# sample tests/fixtures_r/fixture.csv to households and persons per village stratum x household
# stratum, then svyratio. Totals: the weighted sample totals times a fixed factor per control
# (1 + 0.03 k, k = 0..11 in column order), so that the calibration moves the weights unevenly.
# Run from the repository root:  Rscript tests/fixtures_r/calibration.R
suppressMessages(library(survey))
fs <- read.csv("tests/fixtures_r/fixture.csv", colClasses = c(household_id = "character", village_code = "character"))
fs$cell <- factor(paste(fs$stratum, fs$hh_stratum, sep = ":"))
fs$wrong <- fs$household_size * (fs$surveyed_income_per_capita <= 3535)
fs$persons <- fs$household_size
fs$approve <- as.numeric(fs$approves == "True")
fs$one <- 1
d <- svydesign(ids = ~village_code, strata = ~stratum, weights = ~weight, data = fs)
cells <- levels(fs$cell)
mm <- cbind(sapply(cells, function(c) as.numeric(fs$cell == c)),
            sapply(cells, function(c) (fs$cell == c) * fs$household_size))
tot <- colSums(mm * fs$weight) * (1 + 0.03 * (seq_len(ncol(mm)) - 1))
colnames(mm) <- c(paste0("households:", cells), paste0("persons:", cells))
names(tot) <- sprintf("`%s`", colnames(mm))
fs2 <- cbind(fs, mm)
d2 <- svydesign(ids = ~village_code, strata = ~stratum, weights = ~weight, data = fs2)
f <- as.formula(paste("~ 0 +", paste(sprintf("`%s`", colnames(mm)), collapse = " + ")))
dc <- calibrate(d2, f, population = tot, calfun = "linear")
out <- data.frame(what = character(), name = character(), value = numeric())
for (nm in c("income_share", "approval")) {
  r <- if (nm == "income_share") svyratio(~wrong, ~persons, dc) else svyratio(~approve, ~one, dc)
  out <- rbind(out, data.frame(what = c("est", "se"), name = nm, value = c(coef(r), SE(r))))
}
out <- rbind(out, data.frame(what = "total", name = colnames(mm), value = unname(tot)))
out <- rbind(out, data.frame(what = "weight", name = fs$household_id, value = weights(dc)))
write.csv(out, "tests/fixtures_r/fixture_calibration.csv", row.names = FALSE)
cat(R.version.string, "survey", as.character(packageVersion("survey")), "\n")
