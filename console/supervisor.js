// The supervisors' pages' session (wallboard.html, reports.html, queue.html): the login form,
// the logout button and the role check.  The session cookie is HttpOnly: it goes with every request.
function supervisorPage(onUser, onLogout) {
  const el = (id) => document.getElementById(id);
  async function start() {
    const me = await fetch("/api/me");
    if (!me.ok) { el("state").textContent = "未登录"; return; }
    const user = await me.json();
    if (user.role !== "supervisor") { el("state").textContent = user.name + "：不是班长账号"; return; }
    onUser(user);
  }
  el("login").onsubmit = async (e) => {
    e.preventDefault();
    const r = await fetch("/api/login", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({name: el("name").value, password: el("password").value})});
    el("password").value = "";
    if (r.ok) start(); else el("state").textContent = (await r.json()).detail;
  };
  el("logout").onclick = async () => {
    await fetch("/api/logout", {method: "POST"});
    if (onLogout) onLogout();
    el("state").textContent = "已退出";
  };
  start();
}
