// The language menu submits itself when a language is chosen (a button does it without scripts).
document.addEventListener("DOMContentLoaded", function () {
  var select = document.getElementById("language");
  if (select && select.form) {
    select.addEventListener("change", function () { select.form.submit(); });
  }
});
