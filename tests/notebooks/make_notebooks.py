"""Write the tiny test notebooks of tests/test_batch.py, tests/test_faults.py and
tests/test_privacy_scan.py (run after editing; outputs are not stored).

    python tests/notebooks/make_notebooks.py
"""
from pathlib import Path

import nbformat as nbf
from nbformat.v4 import new_notebook, new_code_cell, new_markdown_cell

HERE = Path(__file__).resolve().parent
KS = {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
      "language_info": {"name": "python"}}

def save(nb, path):
    nb.metadata.update(KS)
    for i, c in enumerate(nb.cells):
        c["id"] = f"cell-{i}"
    nbf.validate(nb)
    nbf.write(nb, path)

county = new_notebook(cells=[
    new_markdown_cell("# 县级测试报告 TEST_HEADING\n\nA tiny parameterized notebook used by `tests/test_batch.py`."),
    new_code_cell(
        "# Parameters (papermill injects the batch's values after this cell)\n"
        "county_code = \"610631\"\n"
        "year = 2020\n"
        "data_dir = \"/tmp/batchdata\"\n"
        "output_dir = \"out\"\n"
        "lang = \"zh\"\n"
        "alpha = 0.05\n"
        "seed = 7\n"
        "n_boot = 50\n"
        "fail_on = \"\"     # county code whose run raises\n"
        "kill_on = \"\"     # county code whose kernel kills itself\n"
        "kill_worker_on = \"\"  # county code whose kernel kills the worker process running it\n"
        "sleep_on = \"\"    # county code that sleeps `sleep_s` seconds ('*': all)\n"
        "nan_on = \"\"      # county code whose results.json gets a NaN\n"
        "sleep_s = 0.0",
        metadata={"tags": ["parameters"]}),
    new_code_cell(
        "import json, os, time\n"
        "from pathlib import Path\n"
        "import numpy as np\n"
        "import pandas as pd\n"
        "CODE_MARKER_7f3a = 'this source text must not reach the HTML report'\n"
        "if county_code == fail_on:\n"
        "    raise RuntimeError(f'deliberate failure for {county_code}')\n"
        "if county_code == kill_on:\n"
        "    os.kill(os.getpid(), 9)\n"
        "if county_code == kill_worker_on:  # the kernel's parent: the batch's worker process\n"
        "    os.kill(os.getppid(), 9)\n"
        "if county_code == sleep_on or sleep_on == '*':\n"
        "    time.sleep(sleep_s)"),
    new_code_cell(
        "data = Path(data_dir)\n"
        "counties = pd.read_parquet(data / 'counties.parquet').set_index('county_code')\n"
        "hh = pd.read_parquet(data / 'households' / f'{county_code}.parquet')\n"
        "rng = np.random.default_rng(seed)\n"
        "reg = hh['registered'].astype(float).to_numpy()\n"
        "boot = np.array([reg[rng.integers(0, len(reg), len(reg))].mean() for _ in range(n_boot)])\n"
        "est = float(reg.mean())\n"
        "lci, uci = (float(x) for x in np.quantile(boot, [alpha / 2, 1 - alpha / 2]))\n"
        "verdict = 'pass' if uci < 0.5 else ('fail' if lci >= 0.5 else 'borderline')\n"
        "results = {\n"
        "    'county_code': county_code, 'county_name': str(counties.loc[county_code, 'county_name']),\n"
        "    'year': int(year), 'n_households': int(len(hh)),\n"
        "    'mean_household_size': float(hh['household_size'].mean()),\n"
        "    'registered_share': {'est': est, 'lci': lci, 'uci': uci, 'n': int(len(hh)), 'verdict': verdict},\n"
        "    'decision': {'overall': verdict},\n"
        "}\n"
        "if county_code == nan_on:\n"
        "    results['mean_household_size'] = float('nan')\n"
        "out = Path(output_dir)\n"
        "(out / 'results.json').write_text(json.dumps(results, ensure_ascii=False, indent=2, sort_keys=True) + '\\n', encoding='utf-8')\n"
        "pd.DataFrame({'household_id': hh['household_id'].head(5)}).to_csv(out / 'followup.csv', index=False)"),
    new_code_cell(
        "from IPython.display import Markdown, display\n"
        "display(Markdown(f\"## 结果 RESULT_HEADING {results['county_name']}: {est:.3f}\"))"),
])
save(county, HERE / "county_stats.ipynb")

province = new_notebook(cells=[
    new_markdown_cell("# 全省测试汇总 PROVINCE_HEADING"),
    new_code_cell("data_dir = \"/tmp/batchdata\"\noutput_dir = \"out\"\nseed = 3\n"
                  "run_dir = \"\"  # a county batch's OUT to roll up (optional)",
                  metadata={"tags": ["parameters"]}),
    new_code_cell(
        "import json\nfrom pathlib import Path\nimport pandas as pd\n"
        "c = pd.read_parquet(Path(data_dir) / 'counties.parquet')\n"
        "n = sum(len(pd.read_parquet(p)) for p in sorted((Path(data_dir) / 'households').glob('*.parquet')))\n"
        "results = {'n_counties': int(len(c)), 'n_households': int(n), 'decision': {'overall': 'pass'}}\n"
        "if run_dir:\n"
        "    rs = [json.loads(p.read_text()) for p in sorted(Path(run_dir).glob('*/results.json'))]\n"
        "    results['rolled_up'] = {'n': len(rs), 'n_households': sum(r['n_households'] for r in rs)}\n"
        "(Path(output_dir) / 'results.json').write_text(json.dumps(results, sort_keys=True), encoding='utf-8')\n"
        "print(results)"),
])
save(province, HERE / "province_stats.ipynb")

# Prints, writes and raises personal data on purpose: tests/test_privacy_scan.py checks that none of
# it leaves the run unmasked (the notebook stands for any report a county writes).
leaky = new_notebook(cells=[
    new_markdown_cell("# 泄露测试 LEAKY_HEADING"),
    new_code_cell("county_code = \"610631\"\ndata_dir = \"/tmp/batchdata\"\noutput_dir = \"out\"\n"
                  "fail_on = \"\"  # county code whose run raises an error quoting the members",
                  metadata={"tags": ["parameters"]}),
    new_code_cell(
        "import json, sys\nfrom pathlib import Path\nimport pandas as pd\n"
        "m = pd.read_csv(Path(data_dir) / 'members.csv', dtype=str)\n"
        "hh = pd.read_csv(Path(data_dir) / 'households.csv', dtype=str)\n"
        "mine = m[m['household_id'].isin(hh.loc[hh['county_code'] == county_code, 'household_id'])]\n"
        "print(mine.head(20).to_string())\n"
        "print('stderr:', ' '.join(mine['id_number'].dropna().head(5)), file=sys.stderr)\n"
        "display(mine.head(20))\n"
        "out = Path(output_dir)\n"
        "mine.head(50).to_csv(out / 'members_dump.csv', index=False)\n"
        "mine.head(50).to_excel(out / 'members_dump.xlsx', index=False)\n"
        "results = {'county_code': county_code, 'n_members': int(len(mine)),\n"
        "           'example': ' / '.join(mine['name'].dropna().head(3)) + ' ' + ' '.join(mine['id_number'].dropna().head(3))}\n"
        "(out / 'results.json').write_text(json.dumps(results, ensure_ascii=False), encoding='utf-8')\n"
        "if county_code == fail_on:\n"
        "    raise ValueError('unreadable rows:\\n' + mine.head(10).to_string())"),
])
save(leaky, HERE / "leaky_members.ipynb")
