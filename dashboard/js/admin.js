// Admin actions need the admin key. It is typed into a password field, checked with the server,
// and held only in this tab's memory: never in storage, cookies or the address bar. Reloading the
// page forgets it.

function $(id) {
  return document.getElementById(id);
}

export function makeAdmin({ api, onChange }) {
  let key = null;

  const unlock = $("admin-dialog");
  const unlockForm = unlock.querySelector("form");
  const keyInput = $("admin-key");
  const unlockError = unlock.querySelector(".error");

  const add = $("add-dialog");
  const addForm = add.querySelector("form");
  const addError = add.querySelector(".error");

  const tokenBox = $("token-dialog");
  const tokenInput = $("token-value");
  const tokenCopy = $("token-copy");

  const ask = $("confirm-dialog");

  // Cancel is a plain button, so Enter in a field submits rather than cancels.
  for (const b of document.querySelectorAll("dialog [data-close]")) {
    b.addEventListener("click", () => b.closest("dialog").close());
  }
  unlock.addEventListener("close", () => {
    keyInput.value = "";
  });

  function setKey(value, why = "") {
    key = value;
    document.body.classList.toggle("admin-on", key !== null);
    onChange(why);
  }

  unlockForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const given = keyInput.value.trim();
    if (!given) {
      unlockError.textContent = "Type the admin key.";
      return;
    }
    unlockError.textContent = "Checking…";
    try {
      await api.checkAdmin(given);
    } catch (err) {
      unlockError.textContent =
        err.status === 403 || err.status === 401 ? "The server refused this key." : `Could not check the key: ${err.message}`;
      return;
    }
    keyInput.value = "";
    unlockError.textContent = "";
    unlock.close();
    setKey(given, "Admin actions are on until you lock them or reload the page.");
  });

  addForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = addForm.elements.id.value.trim();
    const name = addForm.elements.name.value.trim();
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(id)) {
      addError.textContent = "The id is 1 to 64 letters, digits, '_', '.' or '-'.";
      return;
    }
    addError.textContent = "Registering…";
    try {
      const r = await api.addDevice(id, name);
      addForm.reset();
      addError.textContent = "";
      add.close();
      showToken(r.id, r.token, "Device registered");
      onChange("", r.id);
    } catch (err) {
      addError.textContent = err.message;
    }
  });

  function showToken(id, token, title) {
    tokenBox.querySelector("h2").textContent = title;
    tokenBox.querySelector(".device").textContent = id;
    tokenInput.value = token;
    tokenCopy.textContent = "Copy";
    tokenBox.showModal();
    tokenInput.select();
  }
  tokenCopy.addEventListener("click", async () => {
    tokenInput.select();
    try {
      await navigator.clipboard.writeText(tokenInput.value);
      tokenCopy.textContent = "Copied";
    } catch {
      tokenCopy.textContent = "Press Ctrl+C";
    }
  });
  // Once closed, the token is gone from the page: it is shown once.
  tokenBox.addEventListener("close", () => {
    tokenInput.value = "";
  });

  return {
    key: () => key,
    active: () => key !== null,
    openUnlock() {
      unlockError.textContent = "";
      unlock.showModal();
      keyInput.focus();
    },
    lock(why = "") {
      if (key !== null) setKey(null, why);
    },
    openAddDevice() {
      addError.textContent = "";
      add.showModal();
      addForm.elements.id.focus();
    },
    showToken,
    // Resolves to false, or to {checked} when confirmed (`checkLabel` adds a checkbox).
    confirm(title, text, checkLabel = "") {
      ask.querySelector("h2").textContent = title;
      ask.querySelector(".text").textContent = text;
      const option = ask.querySelector(".option");
      const box = option.querySelector("input");
      option.hidden = !checkLabel;
      option.querySelector("span").textContent = checkLabel;
      box.checked = false;
      ask.returnValue = "";
      ask.showModal();
      return new Promise((resolve) => {
        ask.addEventListener("close", () => resolve(ask.returnValue === "ok" ? { checked: box.checked } : false), {
          once: true,
        });
      });
    },
  };
}
