// Creating a flag: pick the type (fixed for the flag's life), then the
// same form as editing.
import { FlagType } from "../gen/vexil/v1/flags_pb";
import { href, navigate } from "../route";
import { FlagForm } from "./FlagForm";

export function NewFlag() {
  return (
    <section>
      <p class="crumbs"><a href="#/">Flags</a> /</p>
      <h1>New flag</h1>
      <FlagForm
        type={FlagType.BOOLEAN}
        onSaved={(flag) => navigate(href(["flags", flag.name]))}
        onCancel={() => navigate("#/")}
      />
    </section>
  );
}
