// Drives the operator console in Debian's headless Chromium (playwright-core), as an operator
// would: signs in through the development login page, opens each page and writes its
// screenshot, opens a changed tool's diff and approves it, and finds an audit row by request id.
// Prints one JSON object with what the pages showed.
//
// usage: node console.mjs CONSOLE_URL USER ROLES SCREENSHOT_DIR TOOL REQUEST_ID
//   TOOL is scope/tool; with ROLES not holding the console's role, only the sign-in is tried.
import { chromium } from "playwright-core";

const [base, user, roles, shots, tool, requestId] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const out = {};
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
  // Not signed in: the console sends the browser to the login page.
  await page.goto(`${base}/`);
  await page.fill("#user_id", user);
  await page.fill("#roles", roles);
  const [answer] = await Promise.all([
    page.waitForResponse((r) => r.url().startsWith(`${base}/login/callback`)),
    page.click("button[type=submit]"),
  ]);
  await page.waitForLoadState();
  out.login_status = answer.status();
  out.title = await page.textContent("h1");
  if (answer.status() !== 302 && answer.status() !== 303) {
    out.text = await page.textContent("main");
    await page.screenshot({ path: `${shots}/refused.png` });
  } else {
    out.overview = await page.textContent("main");
    await page.screenshot({ path: `${shots}/overview.png`, fullPage: true });
    await page.goto(`${base}/scopes`);
    out.scopes = await page.textContent("main");
    await page.screenshot({ path: `${shots}/scopes.png`, fullPage: true });
    await page.goto(`${base}/tools`);
    out.tools = await page.textContent("main");
    await page.screenshot({ path: `${shots}/tools.png`, fullPage: true });
    await page.click(`a[href="/tools/${tool}"]`);
    await page.waitForLoadState();
    out.diff = await page.textContent("pre.diff");
    await page.screenshot({ path: `${shots}/tool-diff.png`, fullPage: true });
    // The operator's cookie without the page's token, or from another site: refused.
    const csrf = await page.inputValue("input[name=csrf]");
    const post = (form, headers) => page.context().request.post(`${base}/tools/${tool}/approve`,
      { form, headers, maxRedirects: 0 });
    out.forged_status = (await post({ csrf: "forged", sha256: "00" })).status();
    out.cross_site_status = (await post({ csrf, sha256: "00" }, { origin: "http://evil.example" })).status();
    await Promise.all([page.waitForNavigation(), page.click("#approve")]);
    out.after_approval = await page.textContent("main");
    await page.screenshot({ path: `${shots}/tool-approved.png`, fullPage: true });
    await page.goto(`${base}/audit`);
    await page.fill("input[name=request_id]", requestId);
    await Promise.all([page.waitForNavigation(), page.click("form.filters button")]);
    out.audit = await page.textContent("main");
    await page.screenshot({ path: `${shots}/audit.png`, fullPage: true });
    await page.goto(`${base}/jobs`);
    out.jobs = await page.textContent("main");
    await page.screenshot({ path: `${shots}/jobs.png`, fullPage: true });
    // A phone's width, in the dark.
    const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, colorScheme: "dark" });
    await phone.context().addCookies(await page.context().cookies());
    await phone.goto(`${base}/`);
    out.phone_width = await phone.evaluate(() => document.documentElement.scrollWidth);
    await phone.screenshot({ path: `${shots}/overview-phone-dark.png`, fullPage: true });
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
