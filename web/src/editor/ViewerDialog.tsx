/**
 * The shell the image and 3D viewers share: a backdrop that closes the viewer when clicked, around a modal
 * dialog (role dialog, aria-modal, named by `label`) that takes the focus when it appears, keeps Tab and
 * Shift+Tab inside, and gives the focus back to what opened it when it goes (focusReturn.ts). Render it
 * only while the viewer is open.
 */
import { useEffect, useRef, type ReactNode } from "react";
import { trapTab, useReturnFocus } from "./focusReturn";

export function ViewerDialog({ label, testId, onClose, children }: {
  label: string;
  testId: string;
  onClose: () => void;
  children: ReactNode;
}) {
  const dialog = useRef<HTMLDivElement>(null);
  useReturnFocus(true);
  useEffect(() => {
    dialog.current?.focus({ preventScroll: true });
  }, []);
  return (
    <div className="ng-viewer-backdrop" onClick={(e) => e.target === e.currentTarget && onClose()}>
      <div
        className="ng-viewer"
        data-testid={testId}
        role="dialog"
        aria-modal="true"
        aria-label={label}
        tabIndex={-1}
        ref={dialog}
        onKeyDown={(e) => trapTab(e, dialog.current)}
      >
        {children}
      </div>
    </div>
  );
}
