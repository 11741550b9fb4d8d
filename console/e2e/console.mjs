// End-to-end test of tessera's console in headless Chromium. Run by
// cmd/tessera/console_test.go, which starts tessera, seeds customers and
// passes what to expect in the environment:
//
//   TESSERA_URL, TESSERA_ADMIN_TOKEN, TESSERA_VIEWER_TOKEN, TESSERA_WRITE_KEY
//   TESSERA_CHROMIUM      the browser (default /usr/bin/chromium)
//   TESSERA_SCREENSHOTS   where every page's screenshot goes
//   TESSERA_ARTIFACTS     if set, a second copy of the screenshots
//   TESSERA_README_IMAGES if set, the README's two screenshots go there
//   EXPECT_EMAIL, EXPECT_IDENTITIES (type:value,…), EXPECT_FEATURE,
//   EXPECT_P_ALIVE (as the page shows it, "83%"), EXPECT_DESTINATION
//
// It exits non-zero, naming the step, on the first failed expectation.
import {chromium} from 'playwright-core';
import {mkdirSync, copyFileSync} from 'node:fs';
import {join} from 'node:path';
import {tmpdir} from 'node:os';

const env = (k, d) => {
  const v = process.env[k] ?? d;
  if (v === undefined) throw new Error(`${k} is not set`);
  return v;
};
const base = env('TESSERA_URL');
const admin = env('TESSERA_ADMIN_TOKEN');
const viewer = env('TESSERA_VIEWER_TOKEN');
const shots = env('TESSERA_SCREENSHOTS', join(tmpdir(), 'tessera-console-shots'));
const artifacts = process.env.TESSERA_ARTIFACTS;
const readme = process.env.TESSERA_README_IMAGES;
const email = env('EXPECT_EMAIL');
const identities = env('EXPECT_IDENTITIES').split(',');
const feature = env('EXPECT_FEATURE');
const pAlive = env('EXPECT_P_ALIVE');
const destination = env('EXPECT_DESTINATION');
for (const d of [shots, artifacts, readme]) if (d) mkdirSync(d, {recursive: true});

let step = 'starting';
function expect(cond, what) {
  if (!cond) throw new Error(what);
}

const browser = await chromium.launch({executablePath: env('TESSERA_CHROMIUM', '/usr/bin/chromium'), headless: true});
const page = await browser.newPage({viewport: {width: 1366, height: 900}});
const consoleErrors = [];
page.on('pageerror', (e) => consoleErrors.push(String(e)));
page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });

async function shot(name, readmeName) {
  const file = join(shots, `${name}.png`);
  await page.screenshot({path: file, fullPage: true});
  if (artifacts) copyFileSync(file, join(artifacts, `${name}.png`));
  if (readme && readmeName) {
    await page.screenshot({path: join(readme, readmeName), fullPage: false});
  }
  console.log(`screenshot ${name}`);
}

async function api(method, path, token, body) {
  const r = await fetch(base + path, {method, headers: {Authorization: `Bearer ${token}`, 'Content-Type': 'application/json'},
    body: body === undefined ? undefined : JSON.stringify(body)});
  return {status: r.status, body: await r.json().catch(() => null)};
}

async function signIn(token) {
  await page.getByLabel('Access token').fill(token);
  await page.getByRole('button', {name: 'Sign in'}).click();
  await page.getByRole('heading', {level: 1, name: 'Overview'}).waitFor();
}

try {
  step = 'sign-in page';
  await page.goto(base + '/');
  await page.getByRole('heading', {name: 'Sign in to tessera'}).waitFor();
  await shot('signin');
  await page.getByLabel('Access token').fill('not-the-token');
  await page.getByRole('button', {name: 'Sign in'}).click();
  await page.getByText("That token isn't right. Check it and try again.").waitFor();

  step = 'sign in as admin';
  await signIn(admin);
  expect(await page.locator('#role').textContent() === 'Administrator', 'the role badge does not say Administrator');
  await page.locator('#overview-charts figure').first().waitFor();
  expect(await page.locator('#overview-charts figure').count() === 6, 'the overview does not show six charts');
  await shot('overview');

  step = 'keyboard navigation';
  await page.getByRole('link', {name: 'Customers'}).focus();
  await page.keyboard.press('Enter');
  await page.getByRole('heading', {level: 1, name: 'Customers'}).waitFor();
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
  expect(focused === 'ident-value', `the customer page does not put the focus in the search box (it is on ${focused})`);

  step = 'customer lookup';
  await page.keyboard.type(email);
  await page.keyboard.press('Enter');
  await page.locator('#customer-name').waitFor();
  const ids = page.getByRole('table', {name: 'Identities'});
  for (const id of identities) {
    const [type, value] = id.split(':');
    await ids.getByRole('row').filter({hasText: type}).filter({hasText: value}).waitFor();
  }
  await page.locator('.merged').getByText('Merged from 1 other profile').waitFor();
  await page.getByRole('table', {name: 'Features'}).getByRole('row').filter({hasText: feature}).waitFor();
  const stillActive = page.getByRole('table', {name: 'Predictions'}).getByRole('row').filter({hasText: 'Still active'});
  await stillActive.getByText(pAlive, {exact: true}).first().waitFor();
  await page.getByText('Probability this customer is still active, from their purchase history.').first().waitFor();
  await shot('customer', 'console-customer.png');

  step = 'customer not found';
  await page.getByLabel('Identifier').fill('nobody@example.com');
  await page.getByRole('button', {name: 'Find customer'}).click();
  await page.getByText("We couldn't find a customer with that email.").waitFor();

  step = 'audience builder';
  await page.getByRole('link', {name: 'Audiences'}).click();
  await page.getByRole('heading', {level: 1, name: 'Audiences'}).waitFor();
  await page.getByRole('link', {name: 'New audience'}).click();
  await page.getByRole('heading', {level: 1, name: 'New audience'}).waitFor();
  await page.getByLabel('Audience name').fill('loyal_customers');
  const cond = page.locator('.condition').first();
  await cond.getByLabel('Field').selectOption(`feature:${feature}`);
  await cond.getByLabel('Operator').selectOption('>=');
  await cond.getByLabel('Value').fill('1');
  const rule = await page.getByLabel('Rule').inputValue();
  expect(rule === `features.${feature} >= 1`, `the builder wrote the rule ${JSON.stringify(rule)}`);
  const shown = page.locator(`#preview-count[data-rule="${rule}"]`);
  await shown.waitFor();
  const shownCount = Number(await shown.getAttribute('data-count'));
  const preview = await api('POST', '/v1/audiences/preview', admin, {rule});
  expect(preview.status === 200, `POST /v1/audiences/preview answered ${preview.status}`);
  expect(shownCount === preview.body.count, `the builder shows ${shownCount} customers, POST /v1/audiences/preview counts ${preview.body.count}`);
  expect(shownCount > 0, 'the preview matches nobody');
  expect(await page.locator('#preview-sample li').count() === Math.min(preview.body.count, 10), 'the preview sample is not shown');
  await page.getByLabel(new RegExp(`^${destination} `)).check();
  await page.getByLabel('Also send the customers who already match').check();
  await shot('audience-builder', 'console-audience-builder.png');

  step = 'an expression typed by hand';
  await page.getByLabel('Rule').fill('features.orders_lifetime >=');
  await page.getByText('The rule has a problem').waitFor();
  await page.getByRole('button', {name: 'Write the rule from the conditions again'}).click();
  await page.locator(`#preview-count[data-rule="${rule}"]`).waitFor();

  step = 'save the audience';
  await page.getByRole('button', {name: 'Save audience'}).click();
  await page.getByText('Audience loyal_customers saved.').waitFor();
  await page.getByRole('row').filter({hasText: 'loyal_customers'}).waitFor();
  const saved = await api('GET', '/v1/audiences/loyal_customers', admin);
  expect(saved.status === 200 && saved.body.rule === rule && saved.body.destinations.join() === destination,
    `the saved audience is ${JSON.stringify(saved.body)}`);
  await shot('audiences');

  step = 'the delivery on the destination page';
  await page.getByRole('link', {name: 'Destinations'}).click();
  await page.getByRole('link', {name: destination, exact: true}).waitFor();
  await shot('destinations');
  await page.getByRole('link', {name: destination, exact: true}).click();
  await page.getByRole('heading', {level: 1, name: `Destination ${destination}`}).waitFor();
  await page.locator('#deliveries tr').filter({hasText: 'loyal_customers'}).filter({hasText: 'delivered'}).first().waitFor({timeout: 60000});
  await page.locator('#dead-letters').getByText('0 dead letters, 0 not replayed yet.').waitFor();
  expect(await page.getByRole('button', {name: 'Replay dead letters'}).isDisabled(), 'Replay is offered with nothing to replay');
  await shot('destination');

  step = 'data quality';
  await page.getByRole('link', {name: 'Data quality'}).click();
  await page.getByRole('heading', {level: 3, name: 'Signed Up'}).waitFor();
  await shot('quality');

  step = 'insights';
  await page.getByRole('link', {name: 'Insights'}).click();
  await page.getByRole('heading', {name: 'RFM segments'}).waitFor();
  await page.getByRole('img', {name: /^Customers per RFM segment/}).waitFor();
  await shot('insights');

  step = 'sign in as viewer';
  await page.getByRole('button', {name: 'Sign out'}).click();
  await signIn(viewer);
  expect(await page.locator('#role').textContent() === 'Viewer (read only)', 'the role badge does not say viewer');
  expect(!(await page.getByRole('link', {name: 'Destinations'}).isVisible()), 'a viewer sees the destinations');

  step = 'a viewer looks a customer up';
  await page.goto(`${base}/#/customers/${encodeURIComponent(`email:${email}`)}`);
  await page.locator('#customer-name').waitFor();

  step = 'a viewer cannot save an audience';
  await page.goto(`${base}/#/audiences/new`);
  await page.getByRole('heading', {level: 1, name: 'New audience'}).waitFor();
  const save = page.getByRole('button', {name: 'Save audience'});
  expect(await save.isDisabled(), 'the Save button is enabled for a viewer');
  await page.getByText('only an administrator can preview and save audiences').waitFor();
  await shot('viewer-builder');
  const refused = await page.evaluate(async (token) => {
    const r = await fetch('/v1/audiences', {method: 'POST', headers: {Authorization: `Bearer ${token}`, 'Content-Type': 'application/json'},
      body: JSON.stringify({name: 'sneaky', rule: 'true'})});
    return r.status;
  }, viewer);
  expect(refused === 403, `the server answered ${refused} to a viewer saving an audience`);

  // The refusals the steps provoke (wrong token, unknown customer, a
  // broken rule, a viewer saving) are logged by Chromium as failed loads;
  // anything else is a fault of the console.
  const unexpected = consoleErrors.filter((e) => !/status of (400|401|403|404) /.test(e));
  expect(unexpected.length === 0, `the browser reported errors: ${unexpected.join('\n')}`);
  console.log('console e2e: all steps passed');
} catch (e) {
  console.error(`console e2e failed at step "${step}": ${e.message}`);
  try { await shot(`failed-${step.replace(/[^a-z]+/gi, '-')}`); } catch {}
  await browser.close();
  process.exit(1);
}
await browser.close();
