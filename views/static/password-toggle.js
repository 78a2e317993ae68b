// Show / hide password: progressive enhancement. Without JavaScript the fields stay plain
// password inputs and every page still works; with it, each password field gets a toggle button.
// NOTE: served from /static (the CSP allows scripts from 'self' only, never inline).
(function () {
  'use strict';
  function enhance(input) {
    if (input.dataset.toggle === 'on') return;
    input.dataset.toggle = 'on';
    var wrapper = document.createElement('div');
    wrapper.className = 'password-field';
    // NOTE: moving the input takes the focus away from it: a field the page focused (autofocus
    // on the field that failed) gets it back.
    var focused = document.activeElement === input;
    input.parentNode.insertBefore(wrapper, input);
    wrapper.appendChild(input);
    if (focused) input.focus();
    var button = document.createElement('button');
    button.type = 'button';
    button.className = 'password-toggle';
    button.setAttribute('aria-controls', input.id);
    // NOTE: the name comes from the button's text ("Show password", the second word visually
    // hidden), not from aria-label: an aria-label would also make the button a "Password" label.
    var verb = document.createElement('span');
    verb.textContent = 'Show';
    var noun = document.createElement('span');
    noun.className = 'visually-hidden';
    noun.textContent = ' password';
    button.appendChild(verb);
    button.appendChild(noun);
    button.addEventListener('click', function () {
      var show = input.type === 'password';
      input.type = show ? 'text' : 'password';
      verb.textContent = show ? 'Hide' : 'Show';
      input.focus();
    });
    wrapper.appendChild(button);
    // A shown password goes back to hidden before the form is sent, so the browser does not
    // offer to remember it as plain text in the form history.
    if (input.form) {
      input.form.addEventListener('submit', function () {
        input.type = 'password';
      });
    }
  }
  function run() {
    var inputs = document.querySelectorAll('input[type="password"][id]');
    for (var i = 0; i < inputs.length; i += 1) enhance(inputs[i]);
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', run);
  else run();
})();
